export KERLYM_CACHE=/tmp/c4/cache
kerlym -e openspiel:connect_four -a ppo -n actor_critic_board -t 1 --pretrain mcts:50:4 --pretrain-epochs 1 --steps 64 --n_steps 32 -b 32 -q --outdir /tmp/c4/runs --eval_episodes 1
