# The two commands of the project (see README.md). Both set up .venv first, skipping what is current.
.PHONY: setup book test clean

PROFILE ?= cpu

setup:
	@bash tools/setup

# Execute every chapter (cached by content) at $(PROFILE), then build _build/html. A failed chapter still
# gets its page (marked failed) and the build still runs, but the command exits non-zero.
book: setup
	@.venv/bin/dk-book run --profile $(PROFILE); status=$$?; \
	.venv/bin/dk-book build || exit $$?; \
	exit $$status

test: setup
	.venv/bin/python -m pytest

clean:
	rm -rf _build book/chapters book/generated book/status.md book/reproduction.md
