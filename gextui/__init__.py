"""gextui: the desk's live Textual dashboard over the daemon's socket."""
