"""What the test layers share: real servers, a hand-moved clock, AppTest and browser helpers.

Support modules, not test modules: test files import them without pulling in each
other's tests. The fixtures themselves are in `tests/conftest.py`.
"""
