"""``vigil-sim``: simulated ONVIF cameras (and their RTSP ports) served on 127.0.0.1, for
the demo, the tests and the benchmarks; misbehaviours (slow, garbage, black hole, wrong
clock) are switched per camera.
"""
