"""The domain: run lifecycle, validation and staging. No web, queue or database imports."""
