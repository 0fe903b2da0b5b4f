//! tickdb-tests: helpers to start the real binary.
