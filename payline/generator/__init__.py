"""Contract-conformant payment traffic with every kind of trouble the pipeline must handle:
:mod:`.plan` (what is sent: a pure function of the options), :mod:`.send` (sending it),
:mod:`.options` (the options from the configuration and a command's flags)."""
