"""The `mlpipe` subcommands, one module per group; each parses its arguments, calls into `tasks`
(and tasks.queries for what it reads) and prints."""
