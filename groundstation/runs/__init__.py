"""A run on disk: its recorder, its reader, its KPIs, its report and maps, and the one style every view draws with."""
