"""Package layout that pyproject.toml cannot express on its own.

The repository keeps model-source adapters in a top-level ``adapters/`` folder, but a
popular PyPI distribution owns the import name ``adapters``. So the folder is installed
as the subpackage ``nasassist_plugins.adapters`` and never as a top-level package.

Folders that hold only data (``nasassist_plugins/predictor/weights``) are listed as
packages too (namespace discovery), so setuptools ships their files as package data
without warning that an importable folder is missing from ``packages``.
"""

import warnings

from setuptools import find_namespace_packages, setup

try:  # setuptools >= 69: the editable-install notice is information, not a problem to fix
    from setuptools.warnings import InformationOnly
except ImportError:  # pragma: no cover - older setuptools emits no such notice
    pass
else:
    # The ``adapters/`` -> ``nasassist_plugins.adapters`` mapping needs setuptools' meta path
    # finder for editable installs; setuptools then "informs" that folders named like the
    # package in the working directory take precedence. That is the layout we chose on purpose.
    warnings.filterwarnings("ignore", message="Editable installation", category=InformationOnly)

_NOT_PACKAGES = ["*.__pycache__", "__pycache__"]

core = find_namespace_packages(include=["nasassist_plugins", "nasassist_plugins.*"], exclude=_NOT_PACKAGES)
adapters = ["nasassist_plugins.adapters"] + [
    f"nasassist_plugins.adapters.{sub}" for sub in find_namespace_packages(where="adapters", exclude=_NOT_PACKAGES)
]
package_dir = {"nasassist_plugins.adapters": "adapters"}

setup(packages=core + adapters, package_dir=package_dir)
