"""The core: config, render plan, stack operations, backup and restore. No CLI code here."""
