"""The test kit: helpers the test tiers share (a stack of a test's own, the real `payline`
command, Kafka topics read and written whole, polling). Tests and conftest files import them
from here; no test imports another test module or a conftest."""
