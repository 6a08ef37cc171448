"""The ``lrkit`` command line: one thin module per command, each wrapping one public function."""
