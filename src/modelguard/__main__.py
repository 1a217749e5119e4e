"""`python -m modelguard`: the command-line interface."""

from modelguard.cli import run

if __name__ == "__main__":
    run()
