"""danbao.engines"""
