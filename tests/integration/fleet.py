"""The small fleet and the server settings the integration tests share."""

METERS, INTERVAL_MS = 20, 200
FLEET = dict(PRODUCER_METERS=METERS, PRODUCER_INTERVAL_MS=INTERVAL_MS, PRODUCER_BACKFILL="30s")
# A window far longer than a test's data, so the whole database is the window; short retries and a
# short stall timeout, so recoveries happen within a test's patience.
SERVER = dict(SERVER_WINDOW="10m", SERVER_METERS=METERS, SERVER_INTERVAL_MS=INTERVAL_MS,
              SERVER_POLL_INTERVAL="200ms", SERVER_STALL_TIMEOUT="3s", SERVER_RETRY_MAX="2s")
