# cython: language_level=3
def build_ok():
    return True
