"""`python -m conceptkit` runs the command line."""

from conceptkit.cli import main

if __name__ == "__main__":
    main()
