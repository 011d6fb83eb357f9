"""The imaging core: plain Python (pydicom, numpy), no Django. Tested and benchmarked alone."""

import pydicom

# Real files break the standard in small ways; we read what we can and report what we can't.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
