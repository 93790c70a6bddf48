"""The daemon process: intake, scheduling, job execution, SLA tracking and the event stream."""
