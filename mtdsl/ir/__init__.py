"""The loop IR (`nodes`), lowered from the checked program and run by every backend."""
