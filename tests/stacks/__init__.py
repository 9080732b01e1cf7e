"""Infrastructure tests (a package, so its conftest and helpers cannot shadow other test folders')."""
