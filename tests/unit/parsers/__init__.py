"""Parser tests on recorded real tool outputs (tests/fixtures/<tool>/)."""
