"""Helpers for the cats vs. dogs study: a CNN from scratch against transfer learning.

The notebook `transfer_learning.ipynb` tells the story; these modules do the
work, in pipeline order: `config` -> `runtime` -> `photos`/`data` -> `models`
-> `training` -> `evaluation` -> `plots`; `study` saves what a run leaves
behind and `cli` runs it all from a terminal. Importing the package changes no
global state.
"""

__version__ = "0.1.0"
