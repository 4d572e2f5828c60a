"""The producer: simulates a fleet of electricity meters and writes their readings to TDengine."""
