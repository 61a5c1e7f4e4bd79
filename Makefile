# Roadwatch: a thin index of the project's commands. `make help` lists them.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed
DATA ?= ../shared/data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help setup system-deps test lint run db-start db-stop dataset train train-v1 release privacy-finetune privacy-int8 bench clean labelstudio-start labelstudio-stop adapt demo adaptation-curve

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

system-deps: ## Debian packages the project needs (PostgreSQL + PostGIS, Chromium for UI tests, GDAL's ogrinfo for the GeoPackage and OGC API tests)
	@need=""; \
	[ -x /usr/lib/postgresql/15/bin/initdb ] && [ -f /usr/share/postgresql/15/extension/postgis.control ] || need="$$need postgresql-15-postgis-3"; \
	[ -x /usr/bin/chromium ] || need="$$need chromium"; \
	[ -x /usr/bin/ogrinfo ] || need="$$need gdal-bin"; \
	if [ -n "$$need" ]; then echo "installing:$$need"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; fi

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[service,training,dev,uploader]'
	touch $(STAMP)

setup: system-deps $(STAMP) ## Create .venv with everything needed to run and test (idempotent)

test: setup ## Run the whole test suite against a project-local PostGIS and Label Studio
	scripts/test.sh

lint: setup ## ruff check + format check, mypy (strict on the packages), import contracts (lint-imports)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy detector datasets geotag service uploader tests
	.venv/bin/lint-imports

db-start: system-deps ## Start the project-local PostGIS (.pg/)
	scripts/devdb.sh start

db-stop: ## Stop it
	scripts/devdb.sh stop

labelstudio-start: ## Start the project-local Label Studio (installs it into .labelstudio/ first); prints its settings
	scripts/labelstudio.sh start
	@scripts/labelstudio.sh env

labelstudio-stop: ## Stop it (its data stays in .labelstudio/data)
	scripts/labelstudio.sh stop

dataset: setup ## Build the training set from $(DATA) into data/rdd-cm
	$(PY) -m datasets build --out data/rdd-cm --val-start 1300 $(DATA)/rdd2022

train: dataset ## Train the shipped model v2: v1 fine-tuned with ReLU (about 1 h on 2 CPU cores)
	$(PY) -m training train --data data/rdd-cm --config training/configs/yolov5nu-relu-416.yaml

train-v1: dataset ## Train v1 from the COCO YOLOv5n seed, the start of v2 (about 2 h on 2 CPU cores)
	$(PY) -m training train --data data/rdd-cm --config training/configs/yolov5nu-seeded-416.yaml

# Fine-tune the default model on a city's corrections (`python -m service labelstudio pull`) on the CPU;
# promoted to default only if it scores higher on the corrections' held-out photos.
CORRECTIONS ?= var/corrections
BASE_DATA ?= data/rdd-cm
EPOCHS ?= 20
adapt: setup ## Fine-tune on $(CORRECTIONS) (+ $(BASE_DATA)) for $(EPOCHS) epochs; promote only if better
	$(PY) -m training adapt --corrections $(CORRECTIONS) $(if $(wildcard $(BASE_DATA)/data.yaml),--base-data $(BASE_DATA)) --epochs $(EPOCHS)

RUN ?= runs/yolov5nu-relu-416
VERSION ?= v2
release: setup ## Export $(RUN)'s best checkpoint as model $(VERSION): fp32 + int8, evaluated, in weights/
	$(PY) -m datasets build --quiet --out data/rf $(DATA)/roboflow-road-crack >/dev/null
	$(PY) -m training release --weights $(RUN)/weights/best.pt --version $(VERSION) --data data/rdd-cm \
		--extra-data data/rf --calib data/rdd-cm/images/train --calib-method percentile --calib-count 100

privacy-finetune: setup ## Build the shipped privacy model: COCO YOLOv5n fine-tuned on the 320 audit frames + 60 photos showing nobody (weights/PRIVACY_MODEL.md)
	$(PY) -m training privacy-finetune --weights $(DATA)/../weights/yolov5n-coco-v6.1-fp16.pt \
		--labels bench/privacy_audit_labels.json --labels bench/privacy_audit_labels-2.json \
		--images $(DATA) --negatives-sample 60 --out weights/privacy-persons-vehicles.onnx

privacy-int8: setup ## Quantise the privacy model to int8 (weights/privacy-persons-vehicles-int8.onnx), calibrated on street photos outside the audit
	$(PY) -m training privacy-int8 --calib $(DATA)/rdd2022/China_MotorBike/train/images \
		--calib $(DATA)/roboflow-road-crack/train/images --exclude bench/privacy_audit_labels.json \
		--exclude bench/privacy_audit_labels-2.json \
		--calib-method percentile --calib-count 100 --calib-chunk 10

bench: setup ## All benchmarks (minutes; run on a quiet machine): tables on stdout, numbers in bench/results/
	$(PY) bench/detector.py data/rdd-cm/images/val --weights weights/roadwatch-yolov5nu-$(VERSION)-fp32.onnx \
		--int8 weights/roadwatch-yolov5nu-$(VERSION)-int8.onnx --pt $(RUN)/weights/best.pt --threads 1
	$(PY) bench/association.py
	$(PY) bench/service.py throughput
	$(PY) bench/service.py read
	$(PY) bench/tiles.py
	$(PY) bench/anonymized_map.py --weights weights/roadwatch-yolov5nu-$(VERSION)-fp32.onnx --data data/rdd-cm
	$(PY) bench/privacy_audit.py $(DATA)
	$(PY) bench/roads.py
	$(PY) bench/quality.py

# The adaptation learning curve (tuned recipe) and the push-strategy comparison of weights/MODEL.md: about
# 6 hours on 2 CPU cores, minutes on a GPU (DEVICE=0); every finished run is kept in runs/adaptation/ and
# skipped, a killed one resumes from its last epoch. Run it niced in the background.
DEVICE ?= cpu
TUNED := --variant e10-lr5e-4-b400-p3 --epochs 10 --lr0 0.0005 --base-limit 400 --oversample-pothole 3
# adapt's default since (weights/MODEL.md): 20 epochs, 4x replay; at 200 and at 849 (the v3 candidate)
DEFAULT_RECIPE := --variant e20-lr5e-4-b800-p3 --epochs 20 --lr0 0.0005 --base-limit 800 --oversample-pothole 3
adaptation-curve: dataset ## Learning curve + push strategies compared (hours; resumable; DEVICE=0 on a GPU)
	$(PY) -m datasets build --quiet --out data/rf $(DATA)/roboflow-road-crack >/dev/null
	$(PY) bench/adaptation.py --device $(DEVICE) $(TUNED)
	$(PY) bench/adaptation.py --device $(DEVICE) $(DEFAULT_RECIPE) --sizes 200 --seeds 0,1
	$(PY) bench/adaptation.py --device $(DEVICE) $(DEFAULT_RECIPE) --sizes 849 --seeds 0,1
	$(PY) bench/adaptation.py --device $(DEVICE) --sizes 50,100,200 --seeds 0,1,2
	$(PY) bench/adaptation.py --device $(DEVICE) --sizes 50,100,200 --seeds 0,1,2 --strategy uncertain --variant uncertain
	$(PY) bench/adaptation.py --device $(DEVICE) --sizes 50,100,200 --seeds 0,1,2 --strategy balanced --variant balanced
	$(PY) bench/active_learning.py
	$(PY) bench/preannotation.py

clean: db-stop labelstudio-stop
	rm -rf .venv .pg .cache var

run: setup ## Set up, start PostGIS, migrate, start a worker and the API (prints URL and demo token)
	HOST=$(HOST) PORT=$(PORT) scripts/run.sh

demo: setup ## `make run` plus the sample drives sent through the uploader (remove: python -m service demo remove)
	HOST=$(HOST) PORT=$(PORT) DEMO=yes scripts/run.sh
