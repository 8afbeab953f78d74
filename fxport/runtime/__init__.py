"""Stage 4, runtime: devices (hardware, mock), ttnn + golden dual calls, contained execution, PCC."""
