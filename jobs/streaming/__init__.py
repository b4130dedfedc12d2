"""The PyFlink jobs. Their names live here so that tools can find them without importing
pyflink."""

TRANSACTIONS_JOB_NAME = "payline-transactions"
FRAUD_JOB_NAME = "payline-fraud"
