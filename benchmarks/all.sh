#!/bin/sh
# Every figure in docs/benchmarks.rst, docs/benchmarks-results.rst and the
# chaos table of docs/reliability.rst, measured in one run: `sh benchmarks/all.sh`
# from the repository root, with Redis and RabbitMQ answering on localhost
# (about an hour on two cores). Nothing else should use the machine meanwhile.
set -e
python -m benchmarks.run --sizes 10,100,1000,10000 --rabbitmq-sizes 10,100,1000 --rq-sizes 100,1000
python -m benchmarks.overhead --brokers redis,rabbitmq --rounds 4 --runs 30
python -m benchmarks.load
for dispatch in auto worker canvas; do
    python -m benchmarks.chaos --dispatch "$dispatch"
done
