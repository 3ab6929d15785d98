"""Pure logic of the nightly ML pipeline; no module here imports `tasks` or luigi's scheduler."""
