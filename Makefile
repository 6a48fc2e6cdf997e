# Meridian — the two commands of the quick start, and a few more.
#   make demo    install what is missing, build, run the demo (DEMO_ARGS="--duration 60 ...")
#   make test    install what is missing, build, run the whole suite (default, ASan+UBSan with the
#                fuzz targets' seeds); make fuzz   fuzz each target for FUZZ_SECONDS
#   make bench   benchmarks (not part of the test suite); figures are recorded in bench/RESULTS.md
#   make sim-campaign   a long simulation campaign: seeds/s, simulated hours/hour, convergence
SHELL := /bin/bash
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 15

.PHONY: all deps build build-asan build-fuzz demo merge-demo test test-default test-asan side-suite fuzz bench sim-campaign \
  clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake --preset default >/dev/null
	@cmake --build --preset default -j $(JOBS)

build-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS) --target core_unit_test core_property_test node_unit_test replication_unit_test \
	  replication_property_test auth_unit_test $(FUZZ_TARGETS:=_replay)

build-fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS) --target $(FUZZ_TARGETS)

# Three regions on this machine over WAN proxies, a live workload, a convergence proof
# (docs/demo.md). Options go in DEMO_ARGS, e.g. make demo DEMO_ARGS="--duration 60 --rate 500".
demo: build
	@build/default/meridian demo $(DEMO_ARGS)

# The merge engine's scripted showcase, in memory.
merge-demo: build
	@build/default/meridian-merge-demo

test-default: build
	@ctest --preset default -j $(JOBS)

test-asan: build-asan
	@ctest --preset asan -j $(JOBS)

# The fuzz targets run side by side, FUZZ_SECONDS each; a crash fails the run and leaves the input
# in build/fuzz (the target's output in build/fuzz/TARGET.log).
FUZZ_TARGETS := event_decoder_fuzz http_request_fuzz exchange_fuzz
fuzz: build-fuzz
	@set -e; pids=""; for target in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$target; \
	  (cd build/fuzz && tests/fuzz/$$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    corpus/$$target $(CURDIR)/tests/fuzz/seeds/$$target > $$target.log 2>&1) & pids="$$pids $$!"; \
	done; failed=0; for pid in $$pids; do wait $$pid || failed=1; done; \
	for target in $(FUZZ_TARGETS); do \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  grep -E '^(Done|stat::number_of_executed_units|==|SUMMARY|.*ERROR)' build/fuzz/$$target.log || true; \
	done; exit $$failed

# The sanitizer suite (its build included; it replays the fuzz targets' seeds) runs beside the
# default build and suite, at low priority: they take the cores the default side leaves idle (links, test discovery,
# real-process tests that mostly wait). Their output goes to build/side-suite.log; its summary is
# shown at the end, all of it when they fail.
test: deps
	@mkdir -p build; nice -n 15 $(MAKE) --no-print-directory side-suite > build/side-suite.log 2>&1 & \
	  side=$$!; \
	  $(MAKE) --no-print-directory build && ctest --preset default -j $(JOBS); suite=$$?; \
	  wait $$side; sided=$$?; \
	  grep -E '^[0-9]+% tests passed' build/side-suite.log; \
	  if [ $$sided -ne 0 ]; then tail -n 80 build/side-suite.log; echo "sanitizer suite failed"; fi; \
	  [ $$suite -eq 0 ] && [ $$sided -eq 0 ]
	@echo "make test: default suite and sanitizer suite (fuzz seeds included) passed"

side-suite: test-asan

# Benchmarks: the machine's wake-up and fsync costs, merge throughput in memory, a node against
# redis-server in the same run, its live WAL and crash recovery, TLS and tokens against neither,
# bounded decrements against plain ones,
# the replication receive path, then three regions through WAN proxies (and a pair with mutual TLS
# against without), strong writes forwarded to their home through the proxies against the round
# trip and transactions against single writes, and re-seeding a region of 1,000,000 documents
# (bench/README.md).
bench: build
	@cmake --build --preset default -j $(JOBS) --target benches
	@build/default/bench/machine_probe
	@build/default/bench/merge_bench
	@bench/node_vs_redis.sh build/default/meridian build/default/bench/http_load
	@bench/node_vs_postgres.sh build/default/meridian build/default/bench/http_load
	@bench/wal_recovery.sh build/default/meridian build/default/bench/http_load
	@bench/security_bench.sh build/default/meridian build/default/bench/http_load
	@bench/bounded_bench.sh build/default/meridian build/default/bench/http_load
	@build/default/bench/apply_bench
	@build/default/bench/store_bench
	@build/default/bench/replication_bench
	@build/default/bench/failover_bench
	@build/default/bench/slo_bench
	@build/default/bench/strong_bench
	@build/default/bench/reseed_bench
	@build/default/bench/verify_bench

# The deterministic simulator over SIM_SEEDS seeds of each fault profile: seeds per second,
# simulated hours per hour, and convergence after the heal (p50/p99) against the simulated RTT,
# including 35% loss at 800 ms RTT (docs/testing.md#simulation). A failing seed prints its replay.
SIM_SEEDS ?= 1000
sim-campaign: build
	@build/default/src/sim/meridian-sim --campaign --seeds $(SIM_SEEDS) --profile default
	@build/default/src/sim/meridian-sim --campaign --seeds $(SIM_SEEDS) --profile lossy
	@build/default/src/sim/meridian-sim --campaign --seeds $(SIM_SEEDS) --profile retention

clean:
	rm -rf build
