"""Task runners: adapters that get ``execute_run(run_id)`` executed somewhere."""
