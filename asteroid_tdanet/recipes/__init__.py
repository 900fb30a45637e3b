"""The recipe steps shared by every ``egs/<dataset>/TDANet`` recipe.

``local/recipe.sh`` runs them through thin entry points in ``local/``:

- :mod:`.config`: the conf schema (documented there), validation, typed overrides;
- :mod:`.training`: stage 2, training with ``asteroid.engine.System`` and Lightning;
- :mod:`.evaluation`: stage 3, whole-utterance metrics and separated examples;
- :mod:`.model_card`: stage 4, Asteroid's publishable model and a Hugging Face model card;
- :mod:`.compare`: stage 5, the table and figure over every experiment;
- :mod:`.plots`: the figures.
"""
