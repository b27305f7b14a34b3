"""TTS voice datasets: clips at the TTS sample rate, speaker ids, and a Hugging Face DatasetDict."""
