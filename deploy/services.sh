#!/usr/bin/env bash
# Make sure the brokers the test suite uses answer on 127.0.0.1.
# Redis: the fixtures start a private redis-server when 6379 does not answer,
# installing Debian's package if needed; only RabbitMQ is handled here.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! answers 5672; then
  if ! command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ not installed: installing Debian's rabbitmq-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
  fi
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 1 120); do answers 5672 && break; sleep 1; done
  answers 5672 || { echo "RabbitMQ did not start" >&2; exit 1; }
fi
if ! command -v redis-server >/dev/null; then
  echo "redis-server not installed: installing Debian's redis-server"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
if ! command -v chromium >/dev/null; then
  echo "chromium not installed: installing Debian's chromium for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
