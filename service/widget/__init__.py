"""The storefront widget: serves the built custom element (the source is in the repository's widget/, the build
in service/static/widget/)."""
