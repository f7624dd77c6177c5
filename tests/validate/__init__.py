"""The validate tier's harnesses (TESTING.md P2, P5, P6, P9): SBC, Geweke, the large
enumeration and the mutation runner, each runnable at the CI smoke size and the full size;
``docs/validation.md`` quotes what the full-size runs record (:mod:`tests.validate.record`).
"""
