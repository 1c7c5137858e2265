"""Every game as an RL environment: multi-step episodes, token-faithful rollouts, rewards and trainer adapters."""
