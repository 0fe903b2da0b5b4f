//! tickdb-io: the real adapters around the sans-IO core.
