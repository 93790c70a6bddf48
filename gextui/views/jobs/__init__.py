"""The Jobs view, split by idea: which jobs and in what order (`filters`), the live table
(`table`), the detail pane (`detail`), what a trader may do to a job (`actions`), and the
view that puts them together (`view`)."""
