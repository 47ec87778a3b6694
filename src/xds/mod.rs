//! The snapshot cache and the ADS server (State-of-the-World and Delta).
