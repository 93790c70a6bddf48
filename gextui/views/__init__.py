"""The dashboard's views, one module each; every view draws itself from `DeskState`."""
