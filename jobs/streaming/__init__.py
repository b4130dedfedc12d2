"""The PyFlink jobs. Their names live here so that tools can find them without importing
pyflink."""

TRANSACTIONS_JOB_NAME = "payline-transactions"
FRAUD_JOB_NAME = "payline-fraud"
# the fraud job's table of the compacted payments.accounts topic (payline status leaves its
# source out of the event-time lag: it is idle, and a day behind, by design)
ACCOUNTS_TABLE = "raw_accounts"
