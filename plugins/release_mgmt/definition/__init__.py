"""Release definitions: the schema (models), reading YAML (loader) and the checks across keys."""
