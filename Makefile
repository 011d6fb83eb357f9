# The two commands: `make run` (web + worker on http://127.0.0.1:8000, DICOM on port 11112) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export VAR_DIR ?= var
export HOST ?= 127.0.0.1
export PORT ?= 8000

.PHONY: run secret ohif demo test fuzz install lint check check-runtime bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Local defaults: a generated secret key kept in var/, plain HTTP cookies on localhost.
# Everything it creates is the user's alone (umask 077; the storage folder: MEDIA_FILE_MODE).
run: install secret
	SECURE_COOKIES=$${SECURE_COOKIES:-0} sh -c 'umask 077 && \
		{ $(PY) manage.py install_ohif || echo "(OHIF not installed: /ohif/ says how; make ohif tries again)"; } && \
		$(PY) manage.py migrate --noinput && \
		$(PY) manage.py ensure_admin && \
		exec $(PY) manage.py serve all'

secret:
	@umask 077 && mkdir -p $(VAR_DIR) && chmod 700 $(VAR_DIR)
	@umask 077 && test -s $(VAR_DIR)/secret_key || \
		$(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $(VAR_DIR)/secret_key
	@chmod 600 $(VAR_DIR)/secret_key

# The OHIF Viewer served at /ohif/: the pinned npm build of @ohif/app, checked against npm's sha512
# integrity, unpacked outside git (OHIF_DIR, default var/ohif). Does nothing when it is there already.
ohif: install secret
	$(PY) manage.py install_ohif

# A synthetic CT for a newcomer to look at (run beside `make run`, whose worker ingests it).
DEMO_USER ?= admin
demo: install
	$(PY) manage.py make_demo_study --user $(DEMO_USER)

# The suite in TEST_WORKERS processes (pytest-xdist; each has its own test database, media folder
# and Celery queues). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS)) $(PYTEST_ARGS)

# Each parser's atheris harness (fuzz/) for FUZZ_SECONDS; failing inputs land in var/fuzz/crashes/.
FUZZ_SECONDS ?= 60
fuzz: install
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	SECRET_KEY=lint DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

# The image installs requirements.txt alone: web, worker and scheduler must start with just that
# (the tests install the development requirements too, which would hide a missing one).
RUNTIME_VENV ?= var/runtime-venv
check-runtime:
	rm -rf $(RUNTIME_VENV) && $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install -q -r requirements.txt
	SECRET_KEY=runtime-check-$$(date +%s)-0123456789abcdefghij VAR_DIR=$(RUNTIME_VENV)/var \
		$(RUNTIME_VENV)/bin/python -c "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'dicomviewer.settings'; \
		django.setup(); import dicomviewer.wsgi, kombu.transport.redis, storages.backends.s3, gunicorn.app.wsgiapp, \
		celery.bin.worker, celery.bin.beat, pythonjsonlogger.json, prometheus_client; print('runtime requirements: ok')"
	rm -rf $(RUNTIME_VENV)

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var media test-artifacts
