"""Package layout that pyproject.toml cannot express on its own.

The repository keeps model-source adapters in a top-level ``adapters/`` folder, but a
popular PyPI distribution owns the import name ``adapters``. So the folder is installed
as the subpackage ``nasassist_plugins.adapters`` and never as a top-level package.
"""

from setuptools import find_packages, setup

core = find_packages(include=["nasassist_plugins", "nasassist_plugins.*"])
adapters = ["nasassist_plugins.adapters"] + [
    f"nasassist_plugins.adapters.{sub}" for sub in find_packages(where="adapters")
]
package_dir = {"nasassist_plugins.adapters": "adapters"}

setup(packages=core + adapters, package_dir=package_dir)
