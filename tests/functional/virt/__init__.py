"""Nova in-process functional tests of the virt driver, on real
containers. nova is set to native threads in ``tests/conftest.py``
(it must happen before any test module imports eventlet); nova's host
poisoning is undone in ``base.RealHostFixture``."""
