"""Widgets the views are made of: the keyed tables and the sparkline; none knows the desk."""
