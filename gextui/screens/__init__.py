"""Modal screens: confirmation, the request form, the rule editor and the help screen."""
