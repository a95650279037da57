"""Files that go into app packages as they are (see edgekit.package)."""
