"""Settings, errors and model references: the bottom layer. It imports nothing of
storage, bot, finetune, ui or app."""
