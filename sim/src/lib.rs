//! tickdb-sim
