"""One module per schema revision, frozen: a migration never imports the live schema."""
