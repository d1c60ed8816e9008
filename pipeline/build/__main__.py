"""``python -m pipeline.build ...``: the build's command line (:mod:`pipeline.build.driver`)."""

from pipeline.build.driver import main

if __name__ == "__main__":
    raise SystemExit(main())
