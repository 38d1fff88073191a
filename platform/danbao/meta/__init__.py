"""danbao.meta"""
