"""Running esms-analytics in production: JSON logs and a run summary for monitoring.

:mod:`esms_analytics.ops.logs` formats log records as one JSON object a line
(``--log-format json``) with every secret of the environment masked;
:mod:`esms_analytics.ops.summary` writes a run's totals to a file
(``sync --summary-json FILE``) for a scheduler or a monitor to read.

This floor imports only :mod:`esms_analytics.errors` and
:mod:`esms_analytics._version`: the command line feeds it the numbers.
"""
