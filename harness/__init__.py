"""What the tests and the benchmarks share to run Vigil for real on 127.0.0.1.

Not part of the product (setuptools does not package it); pytest's ``pythonpath = ["."]``
and the benchmarks' own path reach it. Two ways to run a collector and two to run an agent,
nothing else:

- ``harness.processes.Collector``: the installed ``vigil-collector serve`` as a process;
- ``harness.app.app_client``: ``create_app`` in this process on 127.0.0.1 (port 0), for tests
  that reach into the running application (a database made to fail);
- ``harness.processes.Agent``: the installed ``vigil-agent`` as a process;
- ``harness.enrolled.enroll_client``: a real ``agent.client.CollectorClient`` enrolled with
  the real enrolment call, for tests that drive the agent's code in-process.

``harness.net`` holds the one ``free_port``/``wait_until`` and plain HTTP calls;
``harness.proxy`` a TCP proxy on 127.0.0.1 that cuts a connection after N bytes;
``harness.forward_proxy`` a forward HTTP proxy (CONNECT tunnels too) that records what it
was asked for; ``harness.tls`` a self-signed certificate for 127.0.0.1 and a TLS front for
a collector, as a deployment's TLS-terminating proxy.
``harness.s3`` moto's S3 server on 127.0.0.1 and buckets on it, for an S3 backup store.
``harness.bytecode`` compiles the product once before a test session starts its processes.
"""
